"""Plate reading on the device: detector + recogniser (int8 TFLite) and canonical text."""
