"""From a prompt folder and a question to the `messages` array a model answers."""
