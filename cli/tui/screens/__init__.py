"""The main screen and the modal screens (confirmation, help, trader editor)."""
