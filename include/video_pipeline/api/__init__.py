"""The upload and status API, served by the Airflow api-server as a plugin app.

``plugins/video_pipeline_plugin.py`` only registers :func:`create_app`'s result;
everything the endpoints do lives here so it can be tested without an api-server.
"""
