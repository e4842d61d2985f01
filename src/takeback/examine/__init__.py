"""Examine a suspect: align it with the original, find what was altered, read its marks."""

from .model import EXAMINATION_SCHEMA, Alignment, Examination, ExamineVerdict, Region

__all__ = ["EXAMINATION_SCHEMA", "Alignment", "Examination", "ExamineVerdict", "Region"]
