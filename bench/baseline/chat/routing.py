# chat/routing.py (tutorial part 2; url() -> re_path(), consumer class -> as_asgi())
from django.urls import re_path
from . import consumers

websocket_urlpatterns = [
    re_path(r'^ws/chat/(?P<room_name>[^/]+)/$', consumers.ChatConsumer.as_asgi()),
]
