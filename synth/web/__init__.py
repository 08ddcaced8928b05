"""The browser editor (synth-web): the FastAPI server and its static page."""
