"""Fine-tuning MACE (naive, multi-head replay, from scratch) and DeePMD on LiF data: data sets, selection,
labelling, training, validation, the registry of trained models and the sweep (``python -m finetune``).

It sits above the driver and the analysis (it runs studies of the models it trains); the potential catalog reads
its registrations from ``catalog.d/`` and imports nothing from here."""
