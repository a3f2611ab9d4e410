//! Vault ACL policies: parsing (HCL and JSON) and evaluation.
