"""Chat models for the bot: the built-in offline model, OpenAI-compatible providers, the cache,
and the model catalogue.

Nothing here imports Flask: the bot runs the same in a web worker, a CLI or a test. This
package module imports nothing itself: the auth and admin services read the catalogue
(:mod:`webapp.llm.catalogue`, :mod:`webapp.llm.names`) without loading LangChain, which only
the modules that build or run models (factory, offline, streaming, cache) import.
"""
