# chat/urls.py (tutorial part 2; url() is gone from Django, re_path() takes the same regexes)
from django.urls import re_path
from . import views

urlpatterns = [
    re_path(r'^$', views.index, name='index'),
    re_path(r'^(?P<room_name>[^/]+)/$', views.room, name='room'),
]
