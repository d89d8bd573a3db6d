from django.conf import settings
from django.core.management.base import BaseCommand

from chat import store


class Command(BaseCommand):
    help = "Delete messages older than CHAT_RETENTION_DAYS (0 keeps everything)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=settings.CHAT["RETENTION_DAYS"])

    def handle(self, *args, days, **options):
        if days <= 0:
            self.stdout.write("retention is 0 (keep forever): nothing deleted")
            return
        self.stdout.write(f"deleted {store.prune(days)} messages older than {days} days")
