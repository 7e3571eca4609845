"""Contracts shared by every inferhook service: statuses, topics, events, API and table models.

Nothing in this package does I/O.
"""
