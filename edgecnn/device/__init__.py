"""The device side: ``classify`` (an image or a camera through a verified artifact, no
TensorFlow) and ``bundle`` (artifacts, labels and preprocessing into the sample Android app).
Only the contract, the data preprocessing and the runtime facade are imported here."""
