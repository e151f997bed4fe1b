"""The policy settings and each family's facts, without torch: what `dagger config`, `--help` and validation read.

    FAMILIES["diffusion"].defaults        # ("gate.threshold=0.013",): what a run with it starts from
    FAMILIES["chunking"].shape_keys       # the settings that fix its networks' shapes

The family classes (dagger/policies/<family>.py) read their `shape_keys` and `defaults` from here, and
dagger.policies.POLICIES loads a class by its `path` only when a policy is made.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass
class PolicyConfig:
    type: str = "mlp-ensemble"
    """the policy family: mlp-ensemble | chunking | diffusion | implicit | remote"""
    members: int = 5
    """mlp-ensemble: MLPs in the ensemble (ThriftyDAgger uses 5); chunking: output heads"""
    hidden: int = 64
    """width of each hidden layer (the critics' too)"""
    layers: int = 2
    """number of hidden layers"""
    lr: float = 3e-3
    """learning rate (the mlp-ensemble family starts from 1e-3: see FAMILIES)"""
    gamma: float = 0.9999
    """goal critic's discount (ThriftyDAgger's value): Q estimates the chance of reaching success"""
    risk_gamma: float = 0.9
    """hazard critic's discount (Fleet-DAgger's): Q estimates the chance of a constraint violation soon"""
    chunk: int = 8
    """chunking, diffusion: actions predicted at once (ACT's chunk size, Diffusion Policy's horizon)"""
    execute: int = 4
    """diffusion: actions executed from each sampled sequence before sampling again"""
    obs_steps: int = 2
    """diffusion: observations the denoiser is conditioned on (the newest and those before it)"""
    samples: int = 8
    """diffusion, implicit: action sequences / actions sampled per decision for the uncertainty"""
    denoise_steps: int = 100
    """diffusion: DDPM noise levels in training"""
    inference_steps: int = 8
    """diffusion: DDIM steps when sampling (the reference low-dim configuration's 8)"""
    negatives: int = 64
    """implicit: counter-example actions per sample in the InfoNCE loss (the reference uses 1024; 256 makes an update
    at batch 128 take ~60 ms here, 64 keeps the learner near 100 updates/s)"""
    serve: str = "mlp-ensemble"
    """remote: the family the policy server hosts when the run starts its own server (no address)"""
    address: str = ""
    """remote: host:port of a policy server to use (empty: start one on loopback)"""
    token_file: str = ""
    """remote: file holding the server's shared secret (empty with no address: a fresh random one)"""
    tls_ca: str = ""
    """remote: the policy server speaks TLS (`dagger serve --tls-cert`): a PEM file of the CA that signed its
    certificate, or the certificate itself when self-signed (empty: no TLS; keep the link on a tunnel or VPN)"""
    deadline_ms: float = 100.0
    """remote: the answer must come within this; otherwise the robot holds and asks again next step"""


@dataclass(frozen=True)
class Family:
    """One trained policy family's facts."""

    path: str
    """module:Class of its BasePolicy subclass"""
    shape_keys: tuple[str, ...]
    """the PolicyConfig fields that fix its networks' shapes (a checkpoint must match them)"""
    defaults: tuple[str, ...] = ()
    """settings a run with this family starts from (a config file and overrides still win): the ensemble gate's
    threshold in the family's own uncertainty units, about the 92nd percentile of its uncertainty over the states a
    freshly cloned policy visits on Meta-World reach, where the mlp-ensemble's threshold lay before its labels were
    smoothed (learner.label_window); not measured again since"""


FAMILIES: dict[str, Family] = {
    # 1e-3: on Meta-World reach's stored labels 0.97 policy-alone success over 1,500-6,000 updates, where 3e-3 fell
    # from 0.96 to 0.89 as it fit the labels' noise (README, Label efficiency); the other families were not measured
    "mlp-ensemble": Family("dagger.policies.ensemble:EnsemblePolicy", ("members", "hidden", "layers"),
                           ("policy.lr=0.001",)),
    "chunking": Family("dagger.policies.chunking:ChunkingPolicy", ("members", "hidden", "chunk"),
                       ("gate.threshold=0.005",)),
    # diffusion: the conditioning's width, and what its weights mean
    "diffusion": Family("dagger.policies.diffusion:DiffusionPolicy", ("hidden", "chunk", "obs_steps", "denoise_steps"),
                        ("gate.threshold=0.013",)),
    "implicit": Family("dagger.policies.implicit:ImplicitPolicy", ("hidden", "layers"),
                       ("gate.threshold=7.0",)),  # nats: its spread is a divergence
}
"""the trained families by name (`remote` is none: it acts with the family its server hosts)"""


def trained_family(config: PolicyConfig) -> PolicyConfig:
    """What the learner trains and checkpoints hold: the family itself, or for `remote` the family its server hosts."""
    return replace(config, type=config.serve) if config.type == "remote" else config
