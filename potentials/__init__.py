"""Potentials: the catalog (name -> family, files, parameters) and one adapter per family."""
