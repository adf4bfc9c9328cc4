"""Training engine shared by the offline search and the service: model zoo, config, trainer, ALC."""
