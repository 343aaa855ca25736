"""The artifact contract: what flows between the stages, and how anything read from a file is trusted.

A *run* is ``runs/<model>/<run-name>/`` holding ``run.json``, ``model.keras``, ``checkpoints/``,
``history.csv``, ``export/`` and ``bench/`` (see DESIGN.md). ``export/manifest.json`` describes
every artifact of an export. This package is the only reader, writer and validator of both
files, and ``resolve(target)`` is the one way a command turns "a run, an export folder, an
artifact or a model name" into paths. No TensorFlow at import: the device side uses it too.

Every file is untrusted input, including the ones edgecnn wrote (runs and exports travel
between people), so everything read here is checked before it is used:

* ``checks``: JSON files must be regular files (a FIFO is refused, never waited on), at most
  ``MAX_JSON_BYTES``, nested at most ``MAX_JSON_DEPTH`` deep, with every field of the right type;
  paths stored in run.json/manifest.json are relative to the file that stores them and must
  resolve (symlinks followed) inside its own folder; every artifact carries a sha256 and is used
  only when its bytes match it.
* ``run``: run.json and ``model.keras`` (checked against the sha256 run.json records for it);
  sizes read from a file (input size, classes, tensor shapes) are bounded and checked against
  each other before anything is allocated.
* ``keras_files``: Keras models load only as plain ``.keras`` zips, through the zip loader
  whatever the file is called, after their config passed an allow-list; HDF5, SavedModel or
  anything else loads only with ``unsafe=True`` (``--unsafe-load``).
* ``manifest``: export manifests; ``resolve``: targets -> paths.

The dataset path a run was trained on is the one path that may point outside its folder (it
names the user's data, which is only ever read through the safe loaders in ``edgecnn.data``):
it is stored relative to the run folder so that a run moved together with its data, or used
from another working directory, still finds its own held-out split.

The names below are the contract's public surface; import them from here.
"""
from edgecnn.contract.checks import (BENCH_DIR, EXPORT_DIR, FILENAME, FORMATS, MANIFEST, MAX_ARTIFACTS,  # noqa: F401
                                     MAX_CLASSES, MAX_JSON_BYTES, MAX_JSON_DEPTH, MODEL_FILE, NAMED_DATASETS,
                                     OUTPUT_KINDS, RUN_FILE, RUN_SCHEMA, SCHEMA, TENSOR_DTYPES, check_file_sha256,
                                     check_name, inside, read_json_file, regular_file, sha256_ok)
from edgecnn.contract.keras_files import (check_model_matches, custom_objects_from, load_keras,  # noqa: F401
                                          safe_load_refusal)
from edgecnn.contract.manifest import (FLOAT_OP_REASONS, artifact_entry, artifact_name, artifact_path,  # noqa: F401
                                       export_root, keras_reference, manifest_dataset, manifest_file, manifest_path, new_manifest, now,
                                       quant_report_path, read_manifest, reference_model, run_of_export, validate,
                                       write_manifest)
from edgecnn.contract.resolve import (Resolved, check_loaded_tensors, model_file_kind, refuse_artifact,  # noqa: F401
                                     resolve, resolve_run)
from edgecnn.contract.run import (Run, dataset_kwargs, dataset_record, dataset_source, find_latest_run,  # noqa: F401
                                  load_run, run_dir_for, runs_root, save_model, spec_from, tool_versions,
                                  validate_run_info, validate_spec, versions, write_run)
