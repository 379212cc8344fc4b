"""Unit tests of the resource models and the CRD generated from them."""
