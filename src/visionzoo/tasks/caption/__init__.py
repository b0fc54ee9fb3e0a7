"""Image captioning (CNN encoder + LSTM decoder): train, predict, evaluate (issue 12)."""
