"""Dispatcher: projects inferhook.events into Postgres and delivers signed webhooks."""
