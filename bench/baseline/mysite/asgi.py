"""The tutorial's mysite/routing.py application, with the ASGI bootstrap Channels 3+ requires.

The tutorial's comment "(http->django views is added by default)" is made explicit: Channels 3+
no longer adds it, so "http" routes to Django's ASGI handler, which is what served HTTP then.
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

import chat.routing  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(URLRouter(chat.routing.websocket_urlpatterns)),
    }
)
