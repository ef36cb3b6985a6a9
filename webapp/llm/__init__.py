"""Chat models for the bot: the built-in offline model, OpenAI-compatible providers, the cache.

Nothing here imports Flask: the bot runs the same in a web worker, a CLI or a test. This
package module imports nothing itself; the model catalogue, which the auth and admin services
read too, is :mod:`webapp.catalogue`, outside this package, so they never load LangChain.
"""
