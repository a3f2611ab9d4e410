//! The vault's side of sealing: the public `sys/sealing-key` endpoint, renewal during
//! housekeeping, and [`Vault::unseal`] for the operator.

use zeroize::Zeroizing;

use super::{Binding, SealError, SealingKeys};
use crate::logical::{ApiError, ApiResult, Operation, Request, Response};
use crate::vault::Vault;

impl Vault {
    pub fn sealing_keys(&self) -> &SealingKeys {
        &self.sealing
    }

    /// Opens a value sealed with `svctl seal` for `binding` (see [`SealingKeys::unseal`]).
    pub async fn unseal(
        &self,
        binding: &Binding,
        sealed: &str,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.sealing.unseal(binding, sealed).await
    }

    pub(crate) async fn renew_sealing_key_if_due(&self) {
        match self
            .sealing
            .renew_if_due(self.config.sealing_key_rotation_period)
            .await
        {
            Ok(true) => tracing::info!(
                key_id = self.sealing.current().key_id(),
                "sealing key renewed automatically"
            ),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "automatic sealing key renewal failed; will retry")
            }
        }
    }

    /// `GET sys/sealing-key`: the current public key, for anyone (it is public by design).
    pub(crate) fn sealing_key_response(&self, req: &Request) -> ApiResult<Response> {
        if req.operation != Some(Operation::Read) {
            return Err(ApiError::unsupported_operation());
        }
        let document = self.sealing.current().document();
        Ok(Response::data(
            serde_json::to_value(document).map_err(ApiError::internal)?,
        ))
    }
}
