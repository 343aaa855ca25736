"""The model zoo: the registry (``create_model``, ``list_models``), one file per paper family with
its paper figures and claims beside each builder (``quicknet``, ``mobilenetv2``, ``sepresnet``,
``cmiv4``, ``alexnet_tiny``; shared layers in ``blocks``), parameter and operation counts
(``analysis``) and the zoo-vs-papers table (``zoo_report``, ``zoo_table.json``).
Nothing here imports data, training or export code."""
