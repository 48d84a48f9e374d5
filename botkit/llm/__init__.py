"""Where answers come from: an OpenAI-compatible API, or the FAQ when offline."""
