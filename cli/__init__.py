"""The `aitrader` command line (Typer) and the terminal UI (Textual)."""
