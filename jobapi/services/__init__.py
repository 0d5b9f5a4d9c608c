"""The API's services: what the handlers delegate to (SQL, scrapyd, Redis)."""
