"""The operator's console (``vvv console``): a small web application on the project's own parts."""
