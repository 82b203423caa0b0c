"""Training: one loop for both stages (``train``: AdamW, warm-up + cosine, clipping, atomic checkpoints), the losses
it minimises (``losses``: OSTrack's tracking loss, stage 2's L_p, L_r and CPESL), exact resume (``resume``, checked
by ``resume_check``) and several processes through torch's DDP (``distributed``). Ranks above the networks
(``models``) and below everything that uses trained networks."""
