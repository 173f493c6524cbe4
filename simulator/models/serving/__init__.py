"""LLM inference serving on the cluster: replicas as jobs, continuous batching, autoscaling.

See ``docs/serving.md`` for the model, the formulas and the configuration.
"""

from simulator.models.serving.autoscaler import Autoscaler, Observation
from simulator.models.serving.model import MODELS, ModelSpec, kv_capacity_tokens, model_spec
from simulator.models.serving.prefix_cache import PrefixCache
from simulator.models.serving.requests import (
    AzureRequests,
    MooncakeRequests,
    PrefixRequestStream,
    RequestStream,
    SharedPrefix,
    SyntheticRequests,
    TokenDist,
)
from simulator.models.serving.router import (
    JoinShortestQueue,
    LeastOutstanding,
    PrefixAffinity,
    RoundRobin,
    make_router,
)
from simulator.models.serving.service import NoServing, Service, ServiceRun, ServingGroup
from simulator.models.serving.steptime import RooflineStepTime, StepTime, TableStepTime

__all__ = [
    "Autoscaler",
    "AzureRequests",
    "JoinShortestQueue",
    "LeastOutstanding",
    "MODELS",
    "ModelSpec",
    "MooncakeRequests",
    "NoServing",
    "Observation",
    "PrefixAffinity",
    "PrefixCache",
    "PrefixRequestStream",
    "RequestStream",
    "RooflineStepTime",
    "RoundRobin",
    "Service",
    "ServiceRun",
    "ServingGroup",
    "SharedPrefix",
    "StepTime",
    "SyntheticRequests",
    "TableStepTime",
    "TokenDist",
    "kv_capacity_tokens",
    "make_router",
    "model_spec",
]
