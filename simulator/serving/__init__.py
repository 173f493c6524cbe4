"""LLM inference serving on the cluster: replicas as jobs, continuous batching, autoscaling.

See ``docs/serving.md`` for the model, the formulas and the configuration.
"""

from simulator.serving.autoscaler import Autoscaler, Observation
from simulator.serving.model import MODELS, ModelSpec, kv_capacity_tokens, model_spec
from simulator.serving.requests import AzureRequests, RequestStream, SyntheticRequests, TokenDist
from simulator.serving.router import JoinShortestQueue, LeastOutstanding, RoundRobin, make_router
from simulator.serving.service import NoServing, Service, ServiceRun, ServingGroup
from simulator.serving.steptime import RooflineStepTime, StepTime, TableStepTime

__all__ = [
    "Autoscaler",
    "AzureRequests",
    "JoinShortestQueue",
    "LeastOutstanding",
    "MODELS",
    "ModelSpec",
    "NoServing",
    "Observation",
    "RequestStream",
    "RooflineStepTime",
    "RoundRobin",
    "Service",
    "ServiceRun",
    "ServingGroup",
    "StepTime",
    "SyntheticRequests",
    "TableStepTime",
    "TokenDist",
    "kv_capacity_tokens",
    "make_router",
    "model_spec",
]
