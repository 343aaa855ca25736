"""The artifact contract: what edgecnn reads from files it did not just write, and how.

Every file is untrusted input, including runs, exports and manifests edgecnn wrote itself (they
travel between people). ``keras_files``: Keras model files, loaded so that no code comes from them.
"""
