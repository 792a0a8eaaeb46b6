"""One module per panel; each shows a slice of `TuiState` and asks the app to act via messages."""
