from django.urls import re_path

from chat.consumers import ChatConsumer, NotFoundConsumer

websocket_urlpatterns = [
    re_path(r"^ws/chat/(?P<room_name>.*)/$", ChatConsumer.as_asgi()),
    re_path(r"", NotFoundConsumer.as_asgi()),
]
