"""What the engine made, and how it goes away: undo on exit and SIGTERM (``cleanup``),
the ownership labels (``ownership``), removal off the caller's path (``removal``), and
pruning what a killed run left behind (``prune``)."""
