//! The generated protocol code: Terraform's `tfplugin6` and go-plugin's services.
#![allow(missing_docs, clippy::all)]

/// Terraform plugin protocol 6.
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

/// go-plugin's broker, controller and stdio services.
pub mod plugin {
    tonic::include_proto!("plugin");
}
