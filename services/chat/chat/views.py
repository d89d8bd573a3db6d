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
    texts, last_id = store.page_history(room_name, settings.CHAT["HISTORY_ON_JOIN"])
    return render(
        request,
        "chat/room.html",
        {
            "room_name": room_name,
            # One string, escaped once by the template: the same text as a {% for %} over the
            # messages, for a fraction of the rendering time.
            "history": "".join(f"{text}\n" for text in texts),
            "last_id": last_id,
            "max_chars": settings.CHAT["MAX_MESSAGE_CHARS"],
        },
    )
