"""The SyncTalk_2D 328 U-Net as a torch module whose state_dict matches real checkpoints key for key.

Attribute names (`conv`, `double_conv`, `inconv`, `maxpool_conv`, `bn3`...) are those of the saved
checkpoints, so `load_state_dict` takes upstream files as they are. Layout: images (B, 6, 320, 320)
float32 in [0, 1], channels [real BGR, masked BGR]; audio (B, *ModeSpec.audio_shape); output
(B, 3, 320, 320) BGR in [0, 1] after a sigmoid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..contract import get_mode

#: Channel widths of the five U-Net levels.
CHANNELS = (32, 64, 128, 256, 512)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, BN, ReLU, 3x3 depthwise, BN, ReLU, 1x1 project, BN (+ input)."""

    def __init__(self, cin: int, cout: int, stride: int, residual: bool, expand: int = 2) -> None:
        super().__init__()
        hidden = cin * expand
        self.residual = residual
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class DoubleBlock(nn.Module):
    """A (possibly strided) projecting block followed by a residual block."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.double_conv = nn.Sequential(
            InvertedResidual(cin, cout, stride, residual=False),
            InvertedResidual(cout, cout, 1, residual=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class InBlock(nn.Module):
    """The first encoder stage: one projecting block at full resolution."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.inconv = nn.Sequential(InvertedResidual(cin, cout, 1, residual=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inconv(x)


class Down(nn.Module):
    """An encoder stage that halves the resolution."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(DoubleBlock(cin, cout, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """A decoder stage: bilinear x2 (align_corners), pad to the skip, concat [up, skip], DoubleBlock."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = DoubleBlock(cin, cout, stride=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        dy = skip.shape[2] - x.shape[2]
        dx = skip.shape[3] - x.shape[3]
        if dx or dy:
            x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x, skip], dim=1))


class OutConv(nn.Module):
    """The 1x1 output convolution (with bias)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class AudioBranch(nn.Module):
    """Maps one mode's audio window to a 512x10x10 feature map.

    ave and hubert: 32 -> 64 -> 128 (expanding blocks), 3x3 conv to 256 (stride 1 for ave, 2 for
    hubert), residual block, 3x3 conv to 512 (stride 2, pad 3), two residual blocks.
    wenet: two residual blocks at 256, a 3x3 conv 256 -> 256 with stride (1, 2), then as ave.
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        c = CHANNELS
        if mode == "wenet":
            self.conv1 = InvertedResidual(c[3], c[3], 1, residual=True)
            self.conv2 = InvertedResidual(c[3], c[3], 1, residual=True)
            self.conv3 = nn.Conv2d(c[3], c[3], kernel_size=3, stride=(1, 2), padding=1)
        else:
            self.conv1 = InvertedResidual(c[0], c[1], 1, residual=False)
            self.conv2 = InvertedResidual(c[1], c[2], 1, residual=False)
            stride = 2 if mode == "hubert" else 1
            self.conv3 = nn.Conv2d(c[2], c[3], kernel_size=3, stride=stride, padding=1)
        self.bn3: nn.BatchNorm2d | nn.Identity = nn.BatchNorm2d(c[3])  # Identity once folded
        self.conv4 = InvertedResidual(c[3], c[3], 1, residual=True)
        self.conv5 = nn.Conv2d(c[3], c[4], kernel_size=3, stride=2, padding=3)
        self.bn5: nn.BatchNorm2d | nn.Identity = nn.BatchNorm2d(c[4])
        self.relu = nn.ReLU()
        self.conv6 = InvertedResidual(c[4], c[4], 1, residual=True)
        self.conv7 = InvertedResidual(c[4], c[4], 1, residual=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(x))
        x = self.relu(self.bn3(self.conv3(x)))
        x = self.conv4(x)
        x = self.relu(self.bn5(self.conv5(x)))
        return self.conv7(self.conv6(x))


class SyncTalkUNet(nn.Module):
    """The SyncTalk_2D 328 generator for one audio mode ("ave", "hubert" or "wenet")."""

    def __init__(self, mode: str = "ave") -> None:
        super().__init__()
        self.mode = get_mode(mode).name
        c = CHANNELS
        # Registration order is the checkpoints' key order.
        self.audio_model = AudioBranch(self.mode)
        self.fuse_conv = nn.Sequential(
            DoubleBlock(c[4] * 2, c[4], stride=1),
            DoubleBlock(c[4], c[3], stride=1),
        )
        self.inc = InBlock(6, c[0])
        self.down1 = Down(c[0], c[0])
        self.down2 = Down(c[0], c[1])
        self.down3 = Down(c[1], c[2])
        self.down4 = Down(c[2], c[3])
        self.down5 = Down(c[3], c[4])
        self.up1 = Up(c[4], c[3] // 2)
        self.up2 = Up(c[3], c[2] // 2)
        self.up3 = Up(c[2], c[1] // 2)
        self.up4 = Up(c[1], c[0])
        self.up5 = Up(c[1], c[0] // 2)
        self.outc = OutConv(c[0] // 2, 3)

    def forward(self, images: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(images)
        return self._decode(x1, *self._down(x1), audio)

    def first_visit(self, images: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """`forward`'s output followed by the template half's skips x2..x5 and x6 (the encoder stages
        that read only the template's input), to keep for the template's later frames. `inc`'s x1
        is not kept: it is two thirds of the bytes and cheap to compute again in `rest`."""
        x1 = self.inc(images)
        skips = self._down(x1)
        return (self._decode(x1, *skips, audio), *skips)

    def rest(self, images: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor, x4: torch.Tensor, x5: torch.Tensor,
             x6: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """The rest of the network: `inc` again, the audio branch, fuse_conv and the decoder, from the
        template half's skips (as `first_visit` gives them); equal to `forward` bit for bit."""
        return self._decode(self.inc(images), x2, x3, x4, x5, x6, audio)

    def _down(self, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        return x2, x3, x4, x5, self.down5(x5)

    def _decode(self, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor, x4: torch.Tensor, x5: torch.Tensor,
                x6: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        # In torch the audio branch runs one sample at a time: oneDNN picks another kernel for
        # its padded stride-2 conv5 when the batch is larger than one, which would make frames
        # depend on the batch size. The branch costs about 2% of the network; the image path
        # batches exactly. An exported graph keeps the batch axis dynamic instead. Training
        # batches it too: its BatchNorm must see the batch, not one sample's statistics.
        if torch.onnx.is_in_onnx_export() or audio.shape[0] == 1 or self.training:
            audio_features = self.audio_model(audio)
        else:
            audio_features = torch.cat([self.audio_model(sample[None]) for sample in audio])
        x6 = self.fuse_conv(torch.cat([x6, audio_features], dim=1))
        x = self.up1(x6, x5)
        x = self.up2(x, x4)
        x = self.up3(x, x3)
        x = self.up4(x, x2)
        x = self.up5(x, x1)
        return torch.sigmoid(self.outc(x))


class FirstVisit(nn.Module):
    """`SyncTalkUNet.first_visit` as a module of its own (what is exported as the first-visit graph)."""

    def __init__(self, network: SyncTalkUNet) -> None:
        super().__init__()
        self.network = network
        self.training = network.training  # in the network's mode, as a part of it

    def forward(self, images: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.network.first_visit(images, audio)


class RestHalf(nn.Module):
    """`SyncTalkUNet.rest` as a module of its own (what is exported as the rest graph)."""

    def __init__(self, network: SyncTalkUNet) -> None:
        super().__init__()
        self.network = network
        self.training = network.training  # in the network's mode, as a part of it

    def forward(self, images: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor, x4: torch.Tensor, x5: torch.Tensor,
                x6: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self.network.rest(images, x2, x3, x4, x5, x6, audio)


#: (channels, side) of the template half's skips x2..x6 for a 320x320 input.
SKIP_SHAPES = ((32, 160), (64, 80), (128, 40), (256, 20), (512, 10))


def fold_batchnorm(network: SyncTalkUNet) -> SyncTalkUNet:
    """Fold every BatchNorm into the convolution before it, in place, for inference.

    Faster (14% on a 2-core CPU, more with channels_last), but the rounding differs from the
    unfolded network: frames move by up to 1 per value, so the exact CPU path does not use it.
    """
    network.eval()
    for module in network.modules():
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                conv, norm = module[i], module[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                    module[i] = fuse_conv_bn_eval(conv, norm)
                    module[i + 1] = nn.Identity()
        elif isinstance(module, AudioBranch):
            assert isinstance(module.bn3, nn.BatchNorm2d) and isinstance(module.bn5, nn.BatchNorm2d), "folded twice"
            module.conv3, module.bn3 = fuse_conv_bn_eval(module.conv3, module.bn3), nn.Identity()
            module.conv5, module.bn5 = fuse_conv_bn_eval(module.conv5, module.bn5), nn.Identity()
    return network
