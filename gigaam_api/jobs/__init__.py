"""Durable transcription jobs: submit a file, get a job id, fetch the result later.

``model`` holds the job record and its wire object, ``store`` the database behind it
(SQLAlchemy, SQLite by default, with leases so several replicas can share one server
database), ``files`` the per-job folder, ``runner`` the threads that run jobs on the shared
inference worker, and ``service`` the operations the HTTP routes and the CLI use.
"""
