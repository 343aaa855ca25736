"""What every stage uses and that knows nothing of models: atomic writes and sha256 (``files``),
plots (``plots``), quiet dependency logs (``quiet``) and progress bars (``progress``)."""
