"""The single-page AU editor: FastAPI server (``server.py``), sessions and uploads (``sessions.py``); the page's
own script, stylesheet and words live in ``complexface/assets/app/``."""
