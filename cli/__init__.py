"""The ``trainfix`` command: one module per command, composed in ``app``. The CLI stays thin:
it parses options, calls the library, renders, and maps errors to one line, a hint and exit 2."""
