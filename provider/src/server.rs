//! The `tfplugin6.Provider` gRPC service: decodes values, runs the shared planning rules, and hands
//! each call to the resource or data source it names.

use std::sync::Arc;

use tokio::sync::RwLock;
use tonic::{Request, Response, Status};

use crate::config::{self, Clients};
use crate::diag::Diagnostics;
use crate::plan;
use crate::proto::tfplugin6 as pb;
use crate::proto::tfplugin6::provider_server::Provider;
use crate::resources::{self, DataSource, Resource};
use crate::schema::{self, Block};
use crate::value::Value;

/// The provider's state across calls: its resources and, once configured, its clients.
pub struct AigovProvider {
    resources: Vec<Box<dyn Resource>>,
    data_sources: Vec<Box<dyn DataSource>>,
    clients: RwLock<Option<Arc<Clients>>>,
}

impl Default for AigovProvider {
    fn default() -> AigovProvider {
        AigovProvider {
            resources: resources::all(),
            data_sources: resources::data_sources(),
            clients: RwLock::new(None),
        }
    }
}

impl AigovProvider {
    fn resource(&self, name: &str) -> Result<&dyn Resource, Status> {
        self.resources
            .iter()
            .find(|r| r.type_name() == name)
            .map(|r| r.as_ref())
            .ok_or_else(|| {
                Status::not_found(format!("this provider has no resource type {name:?}"))
            })
    }

    fn data_source(&self, name: &str) -> Result<&dyn DataSource, Status> {
        self.data_sources
            .iter()
            .find(|r| r.type_name() == name)
            .map(|r| r.as_ref())
            .ok_or_else(|| Status::not_found(format!("this provider has no data source {name:?}")))
    }

    async fn clients(&self) -> Result<Arc<Clients>, Diagnostics> {
        self.clients.read().await.clone().ok_or_else(|| {
            let mut d = Diagnostics::default();
            d.error(
                "Provider not configured",
                "aigov was called before ConfigureProvider.",
            );
            d
        })
    }
}

/// Decodes a value into a block's shape: msgpack when present, else JSON.
fn decode(value: Option<&pb::DynamicValue>, block: &Block) -> Result<Value, Diagnostics> {
    let Some(value) = value else {
        return Ok(Value::Null);
    };
    let decoded = if !value.msgpack.is_empty() {
        Value::from_msgpack(&value.msgpack)
    } else if !value.json.is_empty() {
        Value::from_json(&value.json)
    } else {
        Ok(Value::Null)
    };
    decoded.map(|v| block.conform(v)).map_err(Diagnostics::from)
}

fn encode(value: &Value, block: &Block) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack: block.conform(value.clone()).to_msgpack(),
        json: Vec::new(),
    })
}

macro_rules! try_diags {
    ($expr:expr, $response:ident { $($field:ident: $value:expr),* }) => {
        match $expr {
            Ok(v) => v,
            Err(diags) => {
                let mut response = pb::$response::Response::default();
                response.diagnostics = Diagnostics::from(diags).into_vec();
                $(response.$field = $value;)*
                return Ok(Response::new(response));
            }
        }
    };
}

#[tonic::async_trait]
impl Provider for AigovProvider {
    async fn get_metadata(
        &self,
        _: Request<pb::get_metadata::Request>,
    ) -> Result<Response<pb::get_metadata::Response>, Status> {
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(capabilities()),
            diagnostics: vec![],
            resources: self
                .resources
                .iter()
                .map(|r| pb::get_metadata::ResourceMetadata {
                    type_name: r.type_name().to_owned(),
                })
                .collect(),
            data_sources: self
                .data_sources
                .iter()
                .map(|d| pb::get_metadata::DataSourceMetadata {
                    type_name: d.type_name().to_owned(),
                })
                .collect(),
        }))
    }

    async fn get_provider_schema(
        &self,
        _: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        Ok(Response::new(pb::get_provider_schema::Response {
            provider: Some(schema::to_proto(&config::schema())),
            resource_schemas: self
                .resources
                .iter()
                .map(|r| (r.type_name().to_owned(), schema::to_proto(&r.schema())))
                .collect(),
            data_source_schemas: self
                .data_sources
                .iter()
                .map(|d| (d.type_name().to_owned(), schema::to_proto(&d.schema())))
                .collect(),
            diagnostics: vec![],
            provider_meta: None,
            server_capabilities: Some(capabilities()),
            functions: Default::default(),
        }))
    }

    async fn validate_provider_config(
        &self,
        request: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        let config = try_diags!(
            decode(request.get_ref().config.as_ref(), &config::schema()),
            validate_provider_config {}
        );
        let mut diags = Diagnostics::default();
        config::validate(&config, &mut diags);
        Ok(Response::new(pb::validate_provider_config::Response {
            diagnostics: diags.into_vec(),
        }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        let request = request.into_inner();
        let resource = self.resource(&request.type_name)?;
        let config = try_diags!(
            decode(request.config.as_ref(), &resource.schema()),
            validate_resource_config {}
        );
        let mut diags = Diagnostics::default();
        resource.validate(&config, &mut diags);
        Ok(Response::new(pb::validate_resource_config::Response {
            diagnostics: diags.into_vec(),
        }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        let request = request.into_inner();
        let source = self.data_source(&request.type_name)?;
        let config = try_diags!(
            decode(request.config.as_ref(), &source.schema()),
            validate_data_resource_config {}
        );
        let mut diags = Diagnostics::default();
        source.validate(&config, &mut diags);
        Ok(Response::new(pb::validate_data_resource_config::Response {
            diagnostics: diags.into_vec(),
        }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let request = request.into_inner();
        let block = self.resource(&request.type_name)?.schema();
        let json = request.raw_state.map(|r| r.json).unwrap_or_default();
        let state = try_diags!(
            Value::from_json(&json).map_err(Diagnostics::from),
            upgrade_resource_state {}
        );
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state: encode(&state, &block),
            diagnostics: vec![],
        }))
    }

    async fn configure_provider(
        &self,
        request: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        let config = try_diags!(
            decode(request.get_ref().config.as_ref(), &config::schema()),
            configure_provider {}
        );
        let clients = try_diags!(Clients::new(&config).await, configure_provider {});
        *self.clients.write().await = Some(Arc::new(clients));
        Ok(Response::new(pb::configure_provider::Response {
            diagnostics: vec![],
        }))
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        let request = request.into_inner();
        let resource = self.resource(&request.type_name)?;
        let block = resource.schema();
        let current = request.current_state.clone();
        let state = try_diags!(
            decode(request.current_state.as_ref(), &block),
            read_resource { new_state: current }
        );
        let clients = try_diags!(self.clients().await, read_resource { new_state: current });
        let read = try_diags!(
            resource.read(&clients, &state).await,
            read_resource { new_state: current }
        );
        Ok(Response::new(pb::read_resource::Response {
            new_state: encode(&read.unwrap_or_default(), &block),
            diagnostics: vec![],
            private: request.private,
        }))
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let request = request.into_inner();
        let resource = self.resource(&request.type_name)?;
        let block = resource.schema();
        let prior = try_diags!(
            decode(request.prior_state.as_ref(), &block),
            plan_resource_change {}
        );
        let proposed = try_diags!(
            decode(request.proposed_new_state.as_ref(), &block),
            plan_resource_change {}
        );
        let config = try_diags!(
            decode(request.config.as_ref(), &block),
            plan_resource_change {}
        );
        let clients = try_diags!(self.clients().await, plan_resource_change {});
        let mut planned = plan::plan(&block, &prior, &proposed, &config);
        if !planned.state.is_null() {
            resource.plan(&clients, &mut planned.state, &prior);
        }
        Ok(Response::new(pb::plan_resource_change::Response {
            planned_state: encode(&planned.state, &block),
            requires_replace: planned
                .requires_replace
                .iter()
                .map(|p| p.to_proto())
                .collect(),
            planned_private: request.prior_private,
            diagnostics: vec![],
            legacy_type_system: false,
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let request = request.into_inner();
        let resource = self.resource(&request.type_name)?;
        let block = resource.schema();
        let prior_wire = request.prior_state.clone();
        let prior = try_diags!(
            decode(request.prior_state.as_ref(), &block),
            apply_resource_change {
                new_state: prior_wire
            }
        );
        let planned = try_diags!(
            decode(request.planned_state.as_ref(), &block),
            apply_resource_change {
                new_state: prior_wire
            }
        );
        let clients = try_diags!(
            self.clients().await,
            apply_resource_change {
                new_state: prior_wire
            }
        );
        let result = match (prior.is_null(), planned.is_null()) {
            (_, true) => resource
                .delete(&clients, &prior)
                .await
                .map(|()| Value::Null),
            (true, false) => resource.create(&clients, &planned).await,
            (false, false) => resource.update(&clients, &prior, &planned).await,
        };
        let new_state = match result {
            Ok(state) => state,
            // Created but not read back: save what was created, so it is not forgotten.
            Err(crate::Error::Created { state, cause }) => {
                let mut d = Diagnostics::default();
                d.error(
                    format!("{} was created, but reading it back failed", request.type_name),
                    format!("{cause}\n\nThe object exists and is recorded in the state with its ID; run the plan again to read it back (or destroy it)."),
                );
                return Ok(Response::new(pb::apply_resource_change::Response {
                    new_state: encode(&state, &block),
                    private: request.planned_private,
                    diagnostics: d.into_vec(),
                    legacy_type_system: false,
                }));
            }
            Err(e) => try_diags!(
                Err::<Value, _>(e),
                apply_resource_change {
                    new_state: prior_wire
                }
            ),
        };
        Ok(Response::new(pb::apply_resource_change::Response {
            new_state: encode(&new_state, &block),
            private: request.planned_private,
            diagnostics: vec![],
            legacy_type_system: false,
        }))
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let request = request.into_inner();
        let resource = self.resource(&request.type_name)?;
        let clients = try_diags!(self.clients().await, import_resource_state {});
        let state = match resource.import(&clients, &request.id).await {
            Ok(state) => state,
            Err(message) => {
                let mut d = Diagnostics::default();
                d.error(
                    format!("Cannot import {} {:?}", request.type_name, request.id),
                    message,
                );
                return Ok(Response::new(pb::import_resource_state::Response {
                    imported_resources: vec![],
                    diagnostics: d.into_vec(),
                }));
            }
        };
        let read = try_diags!(
            resource.read(&clients, &state).await,
            import_resource_state {}
        );
        let Some(read) = read else {
            let mut d = Diagnostics::default();
            d.error(
                format!("Cannot import non-existent remote object {:?}", request.id),
                format!("No {} with this ID exists; check the ID and the provider's account and region.", request.type_name),
            );
            return Ok(Response::new(pb::import_resource_state::Response {
                imported_resources: vec![],
                diagnostics: d.into_vec(),
            }));
        };
        Ok(Response::new(pb::import_resource_state::Response {
            imported_resources: vec![pb::import_resource_state::ImportedResource {
                type_name: request.type_name,
                state: encode(&read, &resource.schema()),
                private: vec![],
            }],
            diagnostics: vec![],
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        let request = request.into_inner();
        let source = self.data_source(&request.type_name)?;
        let block = source.schema();
        let config = try_diags!(decode(request.config.as_ref(), &block), read_data_source {});
        let clients = try_diags!(self.clients().await, read_data_source {});
        let state = try_diags!(source.read(&clients, &config).await, read_data_source {});
        Ok(Response::new(pb::read_data_source::Response {
            state: encode(&state, &block),
            diagnostics: vec![],
        }))
    }

    async fn get_functions(
        &self,
        _: Request<pb::get_functions::Request>,
    ) -> Result<Response<pb::get_functions::Response>, Status> {
        Ok(Response::new(pb::get_functions::Response::default()))
    }

    async fn stop_provider(
        &self,
        _: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        // Every AWS call is bounded by the provider block's timeouts and retries (config.rs), so
        // there is nothing long-running to interrupt: answering is enough for Terraform to proceed.
        Ok(Response::new(pb::stop_provider::Response {
            error: String::new(),
        }))
    }
}

fn capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        plan_destroy: false,
        get_provider_schema_optional: true,
        move_resource_state: false,
    }
}
