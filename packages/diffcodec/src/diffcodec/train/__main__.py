from diffcodec.train import main

main()
