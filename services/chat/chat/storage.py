"""Static files storage: hashed names, each looked up once per process."""

from django.contrib.staticfiles import storage


class ManifestStaticFilesStorage(storage.ManifestStaticFilesStorage):
    """ManifestStaticFilesStorage whose url() remembers its answers.

    The manifest is read once at start and a deploy starts new processes, so a name's URL never
    changes within one: the lookup (manifest, unquote, urljoin) was 7% of the room page's CPU
    time for its two {% static %} tags (docs/PERFORMANCE.md). A missing name still raises.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._urls = {}

    def url(self, name, force=False):
        if force:
            return super().url(name, force=True)
        try:
            return self._urls[name]
        except KeyError:
            url = self._urls[name] = super().url(name)
            return url
