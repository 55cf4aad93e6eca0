"""clinfusion.datasets"""
