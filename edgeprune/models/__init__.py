"""Model zoo: CIFAR ResNets, CIFAR MobileNetV2, a demo CNN, and a registry to build and load them."""

from .demo_cnn import DemoCNN, demo_cnn
from .mobilenetv2 import MobileNetV2, mobilenetv2
from .resnet_cifar import BasicBlock, CifarResNet, resnet20, resnet32, resnet44, resnet56
from .weights import WeightsError, load_weights
from .zoo import MODELS, ModelSpecError, build_model

__all__ = [
    "MODELS",
    "BasicBlock",
    "CifarResNet",
    "DemoCNN",
    "MobileNetV2",
    "ModelSpecError",
    "WeightsError",
    "build_model",
    "demo_cnn",
    "load_weights",
    "mobilenetv2",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
]
