"""What a user can do, the same for the page and the named API (and so for MCP).

Each action takes the service and plain values, returns a session or a dataclass, and
raises one kind of user error, ``gr.Error`` in words (``SearchService.user_error`` turns an
engine's typed error into it, at this one boundary). The tabs turn what an action returns
into components; ``ui/api.py`` turns it into JSON. Neither imports the other; both import
this package, which imports neither.

- :mod:`.searching`: search, refine, mark, explain, the threshold.
- :mod:`.galleries`: load a gallery, build an index, draw the map.
- :mod:`.duplicates`: groups of copies.
- :mod:`.evaluation`: precision at k and mAP of engines.
- :mod:`.people`: the faces engine's people, naming them.
- :mod:`.filters`: the photo filters (dates, cameras, location, tags, words, people).
"""
