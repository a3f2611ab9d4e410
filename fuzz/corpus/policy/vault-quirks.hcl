# HCL 1 as Vault accepts it
path "secret/data/{{identity.entity.metadata.team}}/*" { capabilities = ["read", "list"] policy = "read" }
path "secret/metadata/+/config" {
  capabilities = ["create", "update", "patch"]
  allowed_parameters = {
    "max_versions" = []
    cas_required = [true, "true"]
  }
  denied_parameters { "delete_version_after" = [] }
  required_parameters = ["cas_required"]
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = 3600
}
/* block comment */
path "sys/*" { capabilities = ["deny"] }
path "transit/encrypt/*" {
  capabilities = ["update"]
  comment = <<EOF
heredoc text
EOF
}
