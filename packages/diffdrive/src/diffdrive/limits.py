"""The most work one diffdrive call may ask for (light: the CLI checks these before it loads a model)."""

#: denoising steps of one plan (DiffusionDrive uses 2, the vanilla policy 20)
MAX_STEPS = 100
#: closed-loop episodes of one ``diffdrive eval`` run, per scenario
MAX_EPISODES = 1000
