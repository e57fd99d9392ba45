"""Origins: the places music is read from. They are only ever read, never written."""
