"""Business logic in plain Python: no Flask request, no ``g``; callers pass the session.

Each module is imported only by the service that needs it, so the auth and admin processes
never load the chat module (and with it LangChain).
"""
