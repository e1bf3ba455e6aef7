"""The Gradio app, one module per job.

A search request goes: ``search_tab`` (the Search tab's handler) -> ``service`` (the
gallery and the shared engine) -> an engine from ``engines``. ``config`` reads the flags
and environment once; ``messages`` words library errors for the app's users; ``controls``
holds the engine, metric and option controls every tab shares; ``page`` puts the tabs
together and launches the server.
"""
