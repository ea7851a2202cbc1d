"""Weight initialisation shared by every network: He et al. [66], as Section 5.1 prescribes."""
from torch import nn

from ..se import SEBlock


def he_init(model: nn.Module) -> None:
    """He et al. [66] throughout: Kaiming-normal convs (fan-out) and SE excitation FCs (fan-in), BN
    scale 1 / shift 0, zero biases; the classifier gets small normal weights (std 0.01).

    The SE FCs are layers of the network like any conv, and get He's rule. With the classifier's
    std 0.01 instead, the two FCs of a gate start ~1e-4 in product and, under weight decay, the gate
    stays at sigmoid(0) = 0.5 for the whole of a short run: a constant scale, not an excitation.
    """
    excitation = {id(fc) for m in model.modules() if isinstance(m, SEBlock) for fc in (m.fc1, m.fc2)}
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if id(m) in excitation:
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
