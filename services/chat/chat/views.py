from django.conf import settings
from django.shortcuts import render

from chat import rooms, store


def index(request):
    return render(request, "chat/index.html")


def room(request, room_name):
    """The room page: recent history as text; the page's JavaScript resumes after it."""
    try:
        rooms.validate(room_name)
    except rooms.InvalidRoom as exc:
        return render(
            request, "chat/invalid_room.html", {"reason": str(exc), "name": room_name}, status=400
        )
    history = store.latest(room_name, settings.CHAT["HISTORY_ON_JOIN"])
    return render(
        request,
        "chat/room.html",
        {
            "room_name": room_name,
            "history": [text for _, text, _ in history],
            "last_id": history[-1][0] if history else store.room_last_id(room_name),
            "max_chars": settings.CHAT["MAX_MESSAGE_CHARS"],
        },
    )
