from django.urls import include, path
from django.views.generic import RedirectView

# /healthz, /readyz and /metrics are served by chat.middleware.ProbeMiddleware, ahead of every
# Host check and HTTPS redirect.
urlpatterns = [
    path("", RedirectView.as_view(url="/chat/", permanent=False)),
    path("chat/", include("chat.urls")),
]
