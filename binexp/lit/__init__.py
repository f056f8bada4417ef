"""Lightning pieces: the classifier module and the callbacks."""
